package guard

import (
	"container/heap"
	"time"
)

// deadlined is an item of a deadlines heap: it knows when it is due and where in the heap
// it sits (-1 when it is in none).
type deadlined interface {
	due() time.Time
	slot() *int
}

// deadlines is a min-heap of items by due time, soonest first, with removal and re-filing
// of any item in O(log n). Use push, fix, remove and peek; Push and Pop serve
// container/heap.
type deadlines[T deadlined] []T

func (h deadlines[T]) Len() int           { return len(h) }
func (h deadlines[T]) Less(i, j int) bool { return h[i].due().Before(h[j].due()) }
func (h deadlines[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	*h[i].slot() = i
	*h[j].slot() = j
}

func (h *deadlines[T]) Push(x any) {
	it := x.(T)
	*it.slot() = len(*h)
	*h = append(*h, it)
}

func (h *deadlines[T]) Pop() any {
	old := *h
	n := len(old) - 1
	it := old[n]
	var zero T
	old[n] = zero
	*it.slot() = -1
	*h = old[:n]
	return it
}

func (h *deadlines[T]) push(it T) { heap.Push(h, it) }

func (h *deadlines[T]) fix(it T) {
	if i := *it.slot(); i >= 0 {
		heap.Fix(h, i)
	}
}

func (h *deadlines[T]) remove(it T) {
	if i := *it.slot(); i >= 0 {
		heap.Remove(h, i)
	}
}

// peek returns the soonest-due item; ok is false when the heap is empty.
func (h deadlines[T]) peek() (it T, ok bool) {
	if len(h) == 0 {
		return it, false
	}
	return h[0], true
}
