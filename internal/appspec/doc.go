// Package appspec reads the appspec.yml that an application bundle carries:
// the file of AWS CodeDeploy's EC2/on-premises deployments, which gantry
// takes unchanged so that existing bundles deploy as they are. It holds the
// model ([AppSpec]), the validation ([Parse]), the order of the lifecycle
// events ([InPlaceEvents], [BlueGreenReplacementEvents],
// [BlueGreenOriginalEvents]) and the environment of hook scripts ([Env]).
//
// [Parse] reports every problem it finds, not only the first, as a
// [diag.Diagnostics]: each with the file, line, column, the dotted path of
// the field (e.g. hooks.BeforeInstall[0].timeout) and the offending line.
//
// # Where gantry differs from CodeDeploy
//
// The CodeDeploy agent checks little before it starts and ignores what it
// does not know; gantry checks the whole file before a deployment starts and
// rejects what it does not understand. A file that deploys with CodeDeploy
// deploys with gantry unless it falls under one of these:
//
//   - Unknown keys are errors at every level, with a "did you mean" hint when
//     a known key is close (CodeDeploy silently ignores them, so a typo such
//     as "timout" or "hook" used to go unnoticed). Duplicate keys are errors
//     too (CodeDeploy keeps the last).
//   - os: windows is rejected: gantry runs on Linux hosts only. Any other
//     value is rejected, as in CodeDeploy.
//   - version: the number 0.0 (also written 0) as in CodeDeploy, and also the
//     string "0.0", which CodeDeploy rejects.
//   - A hook's timeout must be a whole number from 1 to 3600 seconds.
//     CodeDeploy accepts larger values and then fails the event when it runs
//     past an hour; it also truncates fractions, which gantry rejects. The
//     timeouts written for one event's scripts must not add up to more than
//     3600 seconds, CodeDeploy's cap for an event. A script without a timeout
//     counts as 3600 seconds in the model but not in that sum: the cap for the
//     event as a whole ([MaxEventTimeout]) is the executor's to enforce, as
//     CodeDeploy does, so that the common list of scripts without timeouts
//     stays valid.
//   - A hook's location is relative to the bundle root and must stay inside
//     it. As in CodeDeploy, which joins the location to the bundle directory,
//     a leading slash also means the bundle root ("/scripts/a.sh" is
//     "scripts/a.sh"), so existing bundles keep working.
//   - Paths are checked: a files source must stay inside the bundle; a
//     destination and a permissions object must be clean absolute paths (a
//     trailing slash is allowed).
//   - Names are checked: runas, owner and group must be POSIX user or group
//     names (a number is taken for a numeric id). acls entries and the
//     SELinux context are checked by the CodeDeploy agent's rules, but before
//     the deployment starts rather than on each host during Install.
//   - mode is read as the octal digits written: mode: 0644 means rw-r--r--. A
//     YAML 1.1 loader such as the CodeDeploy agent's reads an unquoted 0644 as
//     the octal number 420, so that CodeDeploy sets mode 0420 for it.
//   - The lifecycle events the agent does not run hooks for (Start,
//     DownloadBundle, Install, BlockTraffic, AllowTraffic, End) are errors
//     rather than silently ignored, and so are unknown event names.
//   - A sequence of YAML documents (--- between them) is an error: CodeDeploy
//     reads the first and ignores the rest.
//
// YAML anchors, aliases and merge keys (<<) are followed. A key given no
// value (files:, runas:, …) is treated as if it were absent, as CodeDeploy
// does, except where a value is required.
package appspec
