module github.com/lethe-dev/lethe/services/lethectl

go 1.26.8

require (
	github.com/lethe-dev/lethe/pkg v0.0.0
	golang.org/x/mod v0.42.0
)

require google.golang.org/protobuf v1.36.12

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/lethe-dev/lethe/pkg => ../../pkg
