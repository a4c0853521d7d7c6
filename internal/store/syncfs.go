package store

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walCategory is the disk-write category pebble uses for WAL files.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

// syncCountingFS wraps a vfs.FS and counts full syncs of write-ahead-log
// files, which is how Stats.WALSyncs shows group commit at work. It adds one
// atomic increment per fsync and changes nothing else.
type syncCountingFS struct {
	vfs.FS
	syncs *atomic.Uint64
}

func (fs *syncCountingFS) wrap(f vfs.File, category vfs.DiskWriteCategory, err error) (vfs.File, error) {
	if err != nil || category != walCategory {
		return f, err
	}
	return &syncCountingFile{File: f, syncs: fs.syncs}, nil
}

func (fs *syncCountingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, category, err)
}

func (fs *syncCountingFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, category, err)
}

func (fs *syncCountingFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(f, category, err)
}

// Unwrap returns the wrapped filesystem (used by vfs.Root).
func (fs *syncCountingFS) Unwrap() vfs.FS { return fs.FS }

type syncCountingFile struct {
	vfs.File
	syncs *atomic.Uint64
}

func (f *syncCountingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}

func (f *syncCountingFile) SyncData() error {
	f.syncs.Add(1)
	return f.File.SyncData()
}

func (f *syncCountingFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if full {
		f.syncs.Add(1)
	}
	return full, err
}
