package kernels

import "math/bits"

// ksignsIQ2XS is ggml's ksigns_iq2xs table (ggml-common.h): the IQ2/IQ3
// formats store 7 sign bits per group of 8 weights and the 8th sign is the
// parity of the other seven, so entry i is i with bit 7 set when i has an
// odd number of set bits.
var ksignsIQ2XS = func() (t [128]uint8) {
	for i := range t {
		t[i] = uint8(i)
		if bits.OnesCount8(uint8(i))%2 == 1 {
			t[i] |= 0x80
		}
	}
	return t
}()
