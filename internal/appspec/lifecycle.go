package appspec

import "slices"

// The names of the lifecycle events of an EC2/on-premises deployment.
const (
	// EventStart is the first event; gantry prepares the host.
	EventStart = "Start"
	// EventBeforeBlockTraffic runs before the host is taken out of the load balancer.
	EventBeforeBlockTraffic = "BeforeBlockTraffic"
	// EventBlockTraffic takes the host out of the load balancer.
	EventBlockTraffic = "BlockTraffic"
	// EventAfterBlockTraffic runs once the host is out of the load balancer.
	EventAfterBlockTraffic = "AfterBlockTraffic"
	// EventApplicationStop stops the previous revision.
	EventApplicationStop = "ApplicationStop"
	// EventDownloadBundle fetches and unpacks the bundle.
	EventDownloadBundle = "DownloadBundle"
	// EventBeforeInstall runs before the bundle's files are installed.
	EventBeforeInstall = "BeforeInstall"
	// EventInstall installs the bundle's files.
	EventInstall = "Install"
	// EventAfterInstall runs once the files are installed.
	EventAfterInstall = "AfterInstall"
	// EventApplicationStart starts the new revision.
	EventApplicationStart = "ApplicationStart"
	// EventValidateService checks that the new revision works.
	EventValidateService = "ValidateService"
	// EventBeforeAllowTraffic runs before the host is put back in the load balancer.
	EventBeforeAllowTraffic = "BeforeAllowTraffic"
	// EventAllowTraffic puts the host back in the load balancer.
	EventAllowTraffic = "AllowTraffic"
	// EventAfterAllowTraffic runs once the host is back in the load balancer.
	EventAfterAllowTraffic = "AfterAllowTraffic"
	// EventEnd is the last event.
	EventEnd = "End"
)

// Event is one step of a deployment on a host.
type Event struct {
	// Name is the event's name, e.g. "BeforeInstall".
	Name string
	// System is true for the events gantry runs itself (Start,
	// DownloadBundle, Install, BlockTraffic, AllowTraffic, End), which run no
	// scripts.
	System bool
	// FromPreviousRevision is true for ApplicationStop, BeforeBlockTraffic and
	// AfterBlockTraffic: their scripts are taken from the appspec.yml of the
	// host's previous successful revision (they stop or drain what that
	// revision started), and they are skipped on a host's first deployment.
	FromPreviousRevision bool
}

// events holds every event, in in-place order.
var events = []Event{
	{Name: EventStart, System: true},
	{Name: EventBeforeBlockTraffic, FromPreviousRevision: true},
	{Name: EventBlockTraffic, System: true},
	{Name: EventAfterBlockTraffic, FromPreviousRevision: true},
	{Name: EventApplicationStop, FromPreviousRevision: true},
	{Name: EventDownloadBundle, System: true},
	{Name: EventBeforeInstall},
	{Name: EventInstall, System: true},
	{Name: EventAfterInstall},
	{Name: EventApplicationStart},
	{Name: EventValidateService},
	{Name: EventBeforeAllowTraffic},
	{Name: EventAllowTraffic, System: true},
	{Name: EventAfterAllowTraffic},
	{Name: EventEnd, System: true},
}

var trafficEvents = []string{
	EventBeforeBlockTraffic, EventBlockTraffic, EventAfterBlockTraffic,
	EventBeforeAllowTraffic, EventAllowTraffic, EventAfterAllowTraffic,
}

func pick(names ...string) []Event {
	out := make([]Event, 0, len(names))
	for _, n := range names {
		for _, e := range events {
			if e.Name == n {
				out = append(out, e)
			}
		}
	}
	return out
}

// InPlaceEvents returns the events of an in-place deployment on one host, in
// the order they run: Start, BeforeBlockTraffic, BlockTraffic,
// AfterBlockTraffic, ApplicationStop, DownloadBundle, BeforeInstall, Install,
// AfterInstall, ApplicationStart, ValidateService, BeforeAllowTraffic,
// AllowTraffic, AfterAllowTraffic, End. The six traffic events are only there
// when trafficControl is true (the group is behind a load balancer).
func InPlaceEvents(trafficControl bool) []Event {
	out := make([]Event, 0, len(events))
	for _, e := range events {
		if !trafficControl && slices.Contains(trafficEvents, e.Name) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// BlueGreenReplacementEvents returns the events run, in order, on the
// replacement hosts of a blue/green deployment: the new revision is installed
// and validated (Start, ApplicationStop … ValidateService), then traffic is
// let in (BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic), then End.
// On a rollback the original hosts take this role.
func BlueGreenReplacementEvents() []Event {
	return pick(EventStart, EventApplicationStop, EventDownloadBundle, EventBeforeInstall,
		EventInstall, EventAfterInstall, EventApplicationStart, EventValidateService,
		EventBeforeAllowTraffic, EventAllowTraffic, EventAfterAllowTraffic, EventEnd)
}

// BlueGreenOriginalEvents returns the events run, in order, on the original
// hosts of a blue/green deployment once the replacements serve: Start,
// BeforeBlockTraffic, BlockTraffic, AfterBlockTraffic, End. On a rollback the
// replacement hosts take this role.
func BlueGreenOriginalEvents() []Event {
	return pick(EventStart, EventBeforeBlockTraffic, EventBlockTraffic, EventAfterBlockTraffic, EventEnd)
}

// ScriptEvents returns the names of the events that take scripts, the valid
// keys of hooks, in in-place order.
func ScriptEvents() []string {
	var out []string
	for _, e := range events {
		if !e.System {
			out = append(out, e.Name)
		}
	}
	return out
}

// IsScriptEvent reports whether name is an event that takes scripts.
func IsScriptEvent(name string) bool {
	for _, e := range events {
		if e.Name == name {
			return !e.System
		}
	}
	return false
}

// IsSystemEvent reports whether name is an event gantry runs itself, which
// takes no scripts.
func IsSystemEvent(name string) bool {
	for _, e := range events {
		if e.Name == name {
			return e.System
		}
	}
	return false
}

// Env returns the environment variables, as KEY=VALUE, that a hook script of
// event is given in addition to the agent's: LIFECYCLE_EVENT, DEPLOYMENT_ID,
// APPLICATION_NAME, DEPLOYMENT_GROUP_NAME and DEPLOYMENT_GROUP_ID, in that
// order.
func Env(event, deploymentID, applicationName, groupName, groupID string) []string {
	return []string{
		"LIFECYCLE_EVENT=" + event,
		"DEPLOYMENT_ID=" + deploymentID,
		"APPLICATION_NAME=" + applicationName,
		"DEPLOYMENT_GROUP_NAME=" + groupName,
		"DEPLOYMENT_GROUP_ID=" + groupID,
	}
}
