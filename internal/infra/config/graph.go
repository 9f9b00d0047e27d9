package config

import (
	"container/heap"
	"maps"
	"slices"
	"strings"
)

// Graph returns every network, group and host block in a deterministic
// topological order: each block after the blocks it depends on, blocks
// that do not depend on each other ordered by address. The slice is the
// caller's; the blocks are d's.
func (d *Definition) Graph() []*Block {
	return slices.Clone(d.order)
}

// resourceBlocks are the network, group and host blocks by address.
func (d *Definition) resourceBlocks() map[string]*Block {
	all := make(map[string]*Block, len(d.Networks)+len(d.Groups)+len(d.Hosts))
	for _, m := range []map[string]*Block{d.Networks, d.Groups, d.Hosts} {
		for _, b := range m {
			all[b.Address()] = b
		}
	}
	return all
}

// order finds dependency cycles (one diagnostic each) and, when there are
// none, sets d.order.
func (l *loader) order() {
	all := l.d.resourceBlocks()
	addrs := slices.Sorted(maps.Keys(all))
	edges := func(addr string) []string { return all[addr].DependsOn } // sorted
	if cycles := stronglyConnected(addrs, edges); len(cycles) > 0 {
		for _, scc := range cycles {
			l.reportCycle(scc, all, edges)
		}
		return
	}
	l.d.order = topoOrder(addrs, all, edges)
}

func (l *loader) reportCycle(scc []string, all map[string]*Block, edges func(string) []string) {
	slices.Sort(scc)
	first := scc[0]
	in := map[string]bool{}
	for _, a := range scc {
		in[a] = true
	}
	// Shortest way from first back to itself, through the component.
	prev := map[string]string{}
	queue := []string{first}
	seen := map[string]bool{first: true}
	var last string
search:
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, next := range edges(cur) {
			if next == first {
				last = cur
				break search
			}
			if in[next] && !seen[next] {
				seen[next] = true
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	path := []string{first}
	for at := last; at != first; at = prev[at] {
		path = append(path, at)
	}
	slices.Reverse(path[1:])
	path = append(path, first)
	msg := "dependency cycle: " + strings.Join(path, " -> ")
	var others []string
	for _, a := range scc {
		if !slices.Contains(path, a) {
			others = append(others, a)
		}
	}
	if len(others) > 0 {
		msg += "; also in the cycle: " + strings.Join(others, ", ")
	}
	b := all[first]
	l.c.at(b.DefRange, fieldOf(b.Kind, []string{b.Name}), "%s", msg)
}

// stronglyConnected returns the components of the graph that hold a cycle
// (more than one node, or one node with an edge to itself), by Tarjan's
// algorithm without recursion.
func stronglyConnected(nodes []string, edges func(string) []string) [][]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	next := 0
	type frame struct {
		node string
		i    int
	}
	for _, root := range nodes {
		if _, done := index[root]; done {
			continue
		}
		call := []frame{{node: root}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			es := edges(f.node)
			if f.i < len(es) {
				w := es[f.i]
				f.i++
				if _, seen := index[w]; !seen {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{node: w})
				} else if onStack[w] {
					low[f.node] = min(low[f.node], index[w])
				}
				continue
			}
			v := f.node
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].node
				low[p] = min(low[p], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var scc []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if len(scc) > 1 || slices.Contains(edges(v), v) {
				out = append(out, scc)
			}
		}
	}
	return out
}

// topoOrder is Kahn's algorithm, taking the smallest ready address first.
func topoOrder(addrs []string, all map[string]*Block, edges func(string) []string) []*Block {
	waiting := make(map[string]int, len(addrs)) // unmet dependencies
	dependents := make(map[string][]string, len(addrs))
	ready := &addrHeap{}
	for _, a := range addrs {
		es := edges(a)
		waiting[a] = len(es)
		for _, dep := range es {
			dependents[dep] = append(dependents[dep], a)
		}
		if len(es) == 0 {
			*ready = append(*ready, a)
		}
	}
	heap.Init(ready)
	out := make([]*Block, 0, len(addrs))
	for ready.Len() > 0 {
		a := heap.Pop(ready).(string)
		out = append(out, all[a])
		for _, dep := range dependents[a] {
			waiting[dep]--
			if waiting[dep] == 0 {
				heap.Push(ready, dep)
			}
		}
	}
	return out
}

type addrHeap []string

func (h addrHeap) Len() int           { return len(h) }
func (h addrHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h addrHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *addrHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *addrHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
