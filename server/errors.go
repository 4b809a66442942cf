package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/server/scheduler"
)

// apiError is an error in OpenAI's JSON shape:
//
//	{"error": {"message": "...", "type": "...", "param": null, "code": null}}
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
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
		return newError(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"the server is busy: every slot is in use and the queue is full; retry later")
	case errors.Is(err, scheduler.ErrPromptTooLong):
		return newError(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", "%v", err)
	case errors.Is(err, scheduler.ErrStopped):
		return newError(http.StatusServiceUnavailable, "server_error", "shutting_down", "the server is shutting down")
	case errors.Is(err, chat.ErrTemplate):
		return newError(http.StatusBadRequest, "invalid_request_error", "template_error", "%v", err)
	}
	return newError(http.StatusInternalServerError, "server_error", "", "%v", err)
}

// writeError writes err in OpenAI's shape.
func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{ae})
}
