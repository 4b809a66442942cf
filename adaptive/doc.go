// Package adaptive is query-dependent precision (issue 12): it scores a
// prompt's complexity before inference, maps the score to a tier (simple,
// moderate, complex), and gives each layer band (early, middle, late) of
// the model the weight precision the tier's plan names, by swapping the
// layer's weights for a lower-precision copy for that request's sequence.
//
// It owns the score (score.go), the tiers and plans (plan.go), the
// lower-precision copies, requantized from the base weights with kernels'
// quantizers, lazily, kept in RAM or in sidecar files, the model file
// never changed (store.go), the release of base pages while a lower copy
// serves a layer (residency.go), and the Planner that ties them to a
// request (planner.go). It does not own the weight swap itself: the model
// evaluates each sequence with its model.Precision (model/precision.go).
//
// README.md beside this file has the formula, the plans and the measured
// cost in quality and gain in speed and memory.
package adaptive
