module github.com/lethe-dev/lethe/services/lethectl

go 1.26.8

replace github.com/lethe-dev/lethe/pkg => ../../pkg
