module github.com/lethe-dev/lethe/services/recordings

go 1.26.8

require github.com/lethe-dev/lethe/pkg v0.0.0

replace github.com/lethe-dev/lethe/pkg => ../../pkg
