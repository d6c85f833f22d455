module github.com/lethe-dev/lethe/services/witness

go 1.26.8

replace github.com/lethe-dev/lethe/pkg => ../../pkg

require (
	filippo.io/torchwood v0.6.1
	github.com/lethe-dev/lethe/pkg v0.0.0
	golang.org/x/mod v0.42.0
)

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
