//go:build stubs

// This file keeps the kernels package (whose Go stubs the generator reads
// through avo's Package and Implement) in go.mod; it is never built.
package main

import _ "github.com/inference-x/inference-x/kernels"
