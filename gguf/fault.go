package gguf

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// ErrFileChanged is wrapped by the error a read of a model file's mapping
// becomes when the file was truncated or rewritten in place while mapped
// (`cp new.gguf model.gguf` over it), and by Check when it sees that.
var ErrFileChanged = errors.New("model file changed while in use")

// Identity is what a part of a model was when it was opened.
type Identity struct {
	Path    string
	Size    int64
	ModTime time.Time
	Dev     uint64
	Inode   uint64
}

func (id Identity) String() string {
	return fmt.Sprintf("%d bytes, mtime %s, inode %d", id.Size, id.ModTime.UTC().Format(time.RFC3339Nano), id.Inode)
}

// LogValue logs the identity as a group: size, mtime, inode.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("size", id.Size), slog.Time("mtime", id.ModTime), slog.Uint64("inode", id.Inode))
}

func identityOf(path string, st fs.FileInfo) Identity {
	id := Identity{Path: path, Size: st.Size(), ModTime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Inode = uint64(sys.Dev), sys.Ino
	}
	return id
}

// Identity returns the identity of every part as it was opened (empty
// for a File from Parse). Binaries log it when they open a model, so that
// a later "model file changed while in use" can be matched to it.
func (f *File) Identity() []Identity {
	var out []Identity
	for _, p := range f.parts {
		if p.path != "" {
			out = append(out, p.id)
		}
	}
	return out
}

// Check reports whether the model's files are still the ones mapped: an
// error wrapping ErrFileChanged when a read of the mapping has faulted, or
// when a part's inode was truncated or rewritten in place (same device and
// inode, another size or mtime), naming the file, what it was and what it
// is. A path replaced by another file (rename, or delete and create) is
// not an error: the mapping keeps the old, intact inode. Check costs one
// stat per part; readiness probes call it.
func (f *File) Check() error {
	if f.faulted.Load() {
		return f.faultErr()
	}
	for _, p := range f.parts {
		if p.path == "" {
			continue
		}
		st, err := os.Stat(p.path)
		if err != nil {
			continue // removed: the mapping holds the old inode
		}
		now := identityOf(p.path, st)
		if now.Dev != p.id.Dev || now.Inode != p.id.Inode {
			continue // replaced: ditto
		}
		if now.Size != p.id.Size || !now.ModTime.Equal(p.id.ModTime) {
			return fmt.Errorf("%w: %s (opened as %s; now %s)", ErrFileChanged, p.path, p.id, now)
		}
	}
	return nil
}

// faultErr is the error of a fault on f's mapping: it names the part
// that changed in place (the first part when none did, e.g. when the
// change was undone already).
func (f *File) faultErr() error {
	var first *mapping
	for i := range f.parts {
		p := &f.parts[i]
		if p.path == "" {
			continue
		}
		if first == nil {
			first = p
		}
		if st, err := os.Stat(p.path); err == nil {
			now := identityOf(p.path, st)
			if now.Dev == p.id.Dev && now.Inode == p.id.Inode && (now.Size != p.id.Size || !now.ModTime.Equal(p.id.ModTime)) {
				return fmt.Errorf("%w: %s (opened as %s; now %s)", ErrFileChanged, p.path, p.id, now)
			}
		}
	}
	if first == nil {
		return ErrFileChanged
	}
	return fmt.Errorf("%w: %s (opened as %s; a read of its mapping faulted)", ErrFileChanged, first.path, first.id)
}

// live is every mapped File, so that a fault address finds its file.
var live struct {
	sync.RWMutex
	files map[*File]struct{}
}

func register(f *File) {
	live.Lock()
	if live.files == nil {
		live.files = map[*File]struct{}{}
	}
	live.files[f] = struct{}{}
	live.Unlock()
}

func unregister(f *File) {
	live.Lock()
	delete(live.files, f)
	live.Unlock()
}

// fileAt returns the live File whose mapping holds addr, or nil.
func fileAt(addr uintptr) *File {
	live.RLock()
	defer live.RUnlock()
	for f := range live.files {
		for _, p := range f.parts {
			if p.path == "" || len(p.data) == 0 {
				continue
			}
			base := uintptr(unsafe.Pointer(unsafe.SliceData(p.data)))
			// The kernel faults whole pages: the address may be the page
			// of the access, at most the mapping's rounded-up end.
			end := base + uintptr(len(p.data)+os.Getpagesize())
			if addr >= base && addr < end {
				return f
			}
		}
	}
	return nil
}

// Fault reports whether a recovered panic value is a memory fault (what a
// goroutine with debug.SetPanicOnFault(true) panics with on SIGBUS or
// SIGSEGV at a non-nil address).
func Fault(r any) bool {
	_, ok := r.(interface {
		error
		Addr() uintptr
	})
	return ok
}

// CatchFault turns a memory fault on the mapping of an open File into an
// error wrapping ErrFileChanged, stored in *err, and marks the File
// faulted (Check reports it from then on). It must be deferred directly,
// on a goroutine that has called debug.SetPanicOnFault(true):
//
//	defer gguf.CatchFault(&err)
//	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
//
// Any other panic, and a fault outside every mapping, goes on panicking.
func CatchFault(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if e := FaultError(r); e != nil {
		*err = e
		return
	}
	panic(r)
}

// FaultError returns the error for a recovered panic value that is a
// memory fault on the mapping of an open File (marking it faulted), or
// nil for any other value.
func FaultError(r any) error {
	fe, ok := r.(interface {
		error
		Addr() uintptr
	})
	if !ok {
		return nil
	}
	f := fileAt(fe.Addr())
	if f == nil {
		return nil
	}
	f.faulted.Store(true)
	return f.faultErr()
}
