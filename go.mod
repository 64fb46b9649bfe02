module github.com/wasmilter/wasmilter

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/emersion/go-message v0.18.2 // indirect
	github.com/emersion/go-milter v0.5.0 // indirect
	github.com/tetratelabs/wazero v1.12.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
