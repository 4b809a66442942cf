package quantize

import (
	"context"
	"errors"

	"github.com/inference-x/inference-x/gguf"
)

// Fill produces the data of tensor i: it fills buf (exactly the tensor's
// size) and returns it, or returns another slice of that size it already
// has (a view of an input file), leaving buf alone.
type Fill func(ctx context.Context, i int, buf []byte) ([]byte, error)

// Stream writes the data of every tensor w declared, in order: fill
// produces tensor i while tensor i-1 is being written, so disk and CPU
// overlap. Memory holds at most two tensors, whatever the model size.
// Stream does not Close w.
func Stream(ctx context.Context, w *gguf.Writer, sizes []int64, fill Fill) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type item struct {
		data []byte
		buf  []byte // the buffer to recycle (nil if data is not one)
	}
	free := make(chan []byte, 2)
	free <- nil
	free <- nil
	full := make(chan item, 1)
	werr := make(chan error, 1)
	go func() {
		for it := range full {
			if err := w.WriteTensor(it.data); err != nil {
				werr <- err
				cancel()
				for range full { // let the producer finish
				}
				return
			}
			free <- it.buf
		}
		werr <- nil
	}()

	var perr error
	for i, size := range sizes {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			perr = ctx.Err()
			break
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		data, err := fill(ctx, i, buf)
		if err != nil {
			perr = err
			break
		}
		if int64(len(data)) != size {
			perr = errors.New("quantize: a tensor's data does not match its declared size")
			break
		}
		full <- item{data, buf}
	}
	close(full)
	if err := <-werr; err != nil {
		return err
	}
	return perr
}
