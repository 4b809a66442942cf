package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/server/scheduler"
)

// apiError is an error in OpenAI's JSON shape:
//
//	{"error": {"message": "...", "type": "...", "param": null, "code": null}}
type apiError struct {
	Status int `json:"-"`
	// RetryAfter, when positive, is sent as the Retry-After header
	// (seconds).
	RetryAfter int     `json:"-"`
	Message    string  `json:"message"`
	Type       string  `json:"type"`
	Param      *string `json:"param"`
	Code       *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, typ, code, format string, args ...any) *apiError {
	e := &apiError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
	if code != "" {
		e.Code = &code
	}
	return e
}

// badRequest is a 400 invalid_request_error naming the offending field.
func badRequest(param, format string, args ...any) *apiError {
	e := newError(http.StatusBadRequest, "invalid_request_error", "", format, args...)
	if param != "" {
		e.Param = &param
	}
	return e
}

// toAPIError maps errors to statuses; one table for the whole API.
func toAPIError(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return newError(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
			"request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, scheduler.ErrQueueFull):
		e := newError(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"the server is busy: every slot is in use and the queue is full; retry later")
		e.RetryAfter = retryBusy
		return e
	case errors.Is(err, experts.ErrUnavailable):
		return unavailable("%v", err)
	case errors.Is(err, scheduler.ErrPromptTooLong):
		return newError(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", "%v", err)
	case errors.Is(err, scheduler.ErrStopped):
		return newError(http.StatusServiceUnavailable, "server_error", "shutting_down", "the server is shutting down")
	case errors.Is(err, chat.ErrTemplate):
		return newError(http.StatusBadRequest, "invalid_request_error", "template_error", "%v", err)
	}
	return newError(http.StatusInternalServerError, "server_error", "", "%v", err)
}

// Retry-After values in seconds: a slot frees up when a generation ends;
// experts come back when a node (re)joins and loads them.
const (
	retryBusy        = 1
	retryUnavailable = 5
)

// unavailable is a 503 for experts that cannot run now.
func unavailable(format string, args ...any) *apiError {
	e := newError(http.StatusServiceUnavailable, "server_error", "experts_unavailable", format, args...)
	e.RetryAfter = retryUnavailable
	return e
}

// writeError writes err in OpenAI's shape.
func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{ae})
}
