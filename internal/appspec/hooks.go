package appspec

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gantry-dev/gantry/internal/diag"
)

// legacyEvents are the old names of the traffic events.
var legacyEvents = map[string]string{
	"BeforeELBRemove": EventBeforeBlockTraffic,
	"AfterELBRemove":  EventAfterBlockTraffic,
	"BeforeELBAdd":    EventBeforeAllowTraffic,
	"AfterELBAdd":     EventAfterAllowTraffic,
}

// systemAlternatives say where to put scripts meant for a system event.
var systemAlternatives = map[string]string{
	EventDownloadBundle: "; use ApplicationStop or BeforeInstall",
	EventInstall:        "; use BeforeInstall or AfterInstall",
	EventBlockTraffic:   "; use BeforeBlockTraffic or AfterBlockTraffic",
	EventAllowTraffic:   "; use BeforeAllowTraffic or AfterAllowTraffic",
}

func (p *parser) hooks(n *yaml.Node, spec *AppSpec) {
	if !p.mappingOf(n, "hooks", "a mapping of lifecycle event names to lists of scripts") {
		return
	}
	for _, e := range p.entries(n, "hooks", nil) {
		field := "hooks." + e.name
		valid := true
		switch {
		case IsScriptEvent(e.name):
		case IsSystemEvent(e.name):
			p.errorf(e.key, field, "%s is a system event and runs no scripts%s", e.name, systemAlternatives[e.name])
			valid = false
		case legacyEvents[e.name] != "":
			p.errorf(e.key, field, "unknown lifecycle event %q; its name is now %s", e.name, legacyEvents[e.name])
			valid = false
		default:
			if s := diag.Suggest(e.name, ScriptEvents()); s != "" {
				p.errorf(e.key, field, "unknown lifecycle event %q (did you mean %q?)", e.name, s)
			} else {
				p.errorf(e.key, field, "unknown lifecycle event %q; the events that take scripts are %s",
					e.name, strings.Join(ScriptEvents(), ", "))
			}
			valid = false
		}
		scripts, ok := p.scripts(e, field)
		if valid && ok && len(scripts) > 0 {
			spec.Hooks[e.name] = scripts
		}
	}
}

func (p *parser) scripts(e entry, field string) ([]Hook, bool) {
	if isNull(e.val) {
		p.errorf(e.val, field, "must be a list of scripts ({location, timeout, runas}), got nothing")
		return nil, false
	}
	items, ok := p.list(e.val, field, "a list of scripts ({location, timeout, runas})")
	if !ok {
		return nil, false
	}
	var hooks []Hook
	sum := 0
	for i, item := range items {
		h, explicit, good := p.hook(item, fmt.Sprintf("%s[%d]", field, i))
		sum += explicit
		if !good {
			ok = false
			continue
		}
		hooks = append(hooks, h)
	}
	if limit := int(MaxEventTimeout / time.Second); sum > limit {
		p.errorf(e.key, field, "the timeouts of its scripts add up to %d seconds; the scripts of one event may take at most %d seconds in all", sum, limit)
		ok = false
	}
	return hooks, ok
}

var hookHints = map[string]string{
	"sudo": "to run the script as root, set runas: root",
}

// hook reads one script; explicit is its timeout in seconds when the file
// gives a valid one, 0 otherwise; ok is false when anything is wrong.
func (p *parser) hook(item *yaml.Node, field string) (h Hook, explicit int, ok bool) {
	if !p.mappingOf(item, field, "a mapping with location (and optionally timeout and runas)") {
		return Hook{}, 0, false
	}
	before := len(p.ds)
	f := p.fields(item, field, []string{"location", "timeout", "runas"}, hookHints)
	h.Timeout = DefaultTimeout
	if e, has := f.get("location"); has {
		h.Location, _ = p.scriptPath(e.val, field+".location")
	} else if f.missing("location") {
		p.errorf(item, field, `missing required key "location" (the path of the script in the bundle)`)
	}
	if v, has := f.value("timeout"); has {
		r := resolve(v)
		secs, err := strconv.Atoi(r.Value)
		good := r.Kind == yaml.ScalarNode && (r.ShortTag() == "!!int" || r.ShortTag() == "!!str") &&
			err == nil && strings.Trim(r.Value, "0123456789") == "" &&
			secs >= 1 && secs <= int(MaxTimeout/time.Second)
		if good {
			h.Timeout = time.Duration(secs) * time.Second
			explicit = secs
		} else {
			p.errorf(v, field+".timeout", "must be a whole number of seconds from 1 to %d, got %s", int(MaxTimeout/time.Second), describe(v))
		}
	}
	if v, has := f.value("runas"); has {
		h.RunAs = p.name(v, field+".runas", "a user name")
	}
	return h, explicit, len(p.ds) == before
}
