module github.com/lethe-dev/lethe/services/lethectl

go 1.26.8

require (
	github.com/lethe-dev/lethe/pkg v0.0.0
	golang.org/x/mod v0.42.0
)

require (
	filippo.io/torchwood v0.6.1
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/lethe-dev/lethe/pkg => ../../pkg
