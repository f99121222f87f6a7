package aggregate

import "unsafe"

// This file holds the package's only use of unsafe: the addresses a Ref
// hands a reader to prefetch. They are plain uintptrs, never converted
// back to pointers, so they keep nothing alive and may be stale (a flush,
// a growing slice or another Writer may move what they pointed at); a
// prefetch of a stale address is harmless.

// Hints return where the state of ref's series was at the last add
// through ref, and for a timer where its next sample would go, for a
// reader to prefetch before a batch of adds: fetching these from memory
// is most of an add's cost when the table does not fit in the cache. The
// addresses must never be dereferenced.
func (ref *Ref) Hints() (series, sample uintptr) { return ref.at, ref.next }

// hintsOf returns the Hints of ser after an add.
func hintsOf(ser *series) (at, next uintptr) {
	at = uintptr(unsafe.Pointer(ser))
	if ser.kind == kindTimer && len(ser.samples) < cap(ser.samples) {
		next = uintptr(unsafe.Pointer(unsafe.SliceData(ser.samples))) + uintptr(len(ser.samples))*unsafe.Sizeof(float64(0))
	}
	return at, next
}
