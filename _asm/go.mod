module github.com/inference-x/inference-x/_asm

go 1.26.7

require (
	github.com/inference-x/inference-x v0.0.0-00010101000000-000000000000
	github.com/mmcloughlin/avo v0.5.0
)

require (
	github.com/klauspost/cpuid/v2 v2.4.2 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)

replace github.com/inference-x/inference-x => ../
