// Package rpc is the gRPC plumbing the coordinator and expert nodes share:
// the one server builder (the token and pending-call checks from the
// headers before a message is read; interceptors for panics and the error
// table; message-size limits; keepalive; the health service; ordered
// shutdown), client dialling with TLS and the token, the listen-address
// policy for plaintext, and the wire encodings of activations and sums. It
// holds no service logic: the expert service is in expertnode/, the client
// side in router/.
package rpc
