// Package shard cuts a MoE model into the files each box of a cluster
// needs and serves the routed experts of such a file.
//
// Split writes, from a model and a placement file, a coordinator file
// (every tensor but the routed experts, whose tensors it keeps with no
// experts in them so their types and shapes are known), one file per
// expert node holding only that node's experts (re-packed 3-D tensors;
// gguf.KeyShardExpertsPrefix+L lists their global ids) and a manifest.
// Every file has the whole model's router fingerprint.
//
// Open reads a node's file (a shard or the whole model) and returns the
// experts it can hold and an experts.Backend over them that takes global
// expert ids (Remap maps them to the shard's local index).
//
// The gguf package reads the shard metadata (File.Shard); model and router
// load shard files through it. This package does not place experts
// (router does) nor serve them over gRPC (expertnode does).
package shard
