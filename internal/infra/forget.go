package infra

// Forget drops what the lifecycle controller keeps in memory about an
// environment whose record was removed (`gantry env rm`): its lifecycle
// runs and membership, so that an environment made later under the same
// name starts with no history.
func (e *Engine) Forget(env string) {
	l := e.lc
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.runs, env)
	delete(l.loaded, env)
	delete(l.members, env)
	delete(l.changed, env)
	delete(l.seq, env)
}
