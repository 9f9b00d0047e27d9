// Package lifecycle runs one host's step of an in-place deployment: the
// CodeDeploy-compatible lifecycle events of appspec.yml, in order, on the
// agent's host.
//
// A [Runner] is given a [Step] (the deployment, the verified bundle on disk
// and the host's previous successful revision) and runs the events of
// appspec.InPlaceEvents: the scripts of ApplicationStop and of the
// block-traffic events come from the previous revision (they are skipped on
// a host's first deployment); DownloadBundle unpacks the bundle into a fresh
// directory <Root>/<application>/<revision>-<random>; Install removes the
// files the previous revision installed that the new one does not, copies
// the appspec's files honouring file_exists_behavior and applies its
// permissions; the other script events run the new revision's hooks with
// the executor package. Each event's start and end are reported through a
// callback, with the tail of its scripts' output. The first failing event
// stops the step; the events after it are reported skipped.
//
// Hooks run as CodeDeploy's agent runs them: the hook file is made
// executable in the agent's own copy of the revision (chmod +x, through an
// [os.Root] on that copy, so nothing outside it is ever changed) and
// executed, so its "#!" line picks the interpreter, with the file's
// absolute path as $0; a file without one runs under /bin/sh. No value
// from the bundle or the deployment is put in shell text. The working
// directory is the revision's directory.
//
// The agent's copies of revisions are private: Root, Root/<application>
// and every revision directory are 0700 (tightened at every step if an
// older agent made them 0755), because the extracted files keep the
// bundle's modes although the appspec's permissions may install them 0600.
// A hook with `runas` needs its revision: its user alone gets POSIX ACL
// entries, search on Runner.Traverse, Root and the application's directory
// and read on the revision directory (acl.go), until the application's
// next step; a file system without ACLs fails such a hook with a clear
// error.
//
// After a successful step, the [Result] holds the [Installed] revision the
// agent records as the host's last successful one (to pass back as
// Step.Previous next time), and the application's directory is pruned to
// the newest Runner.Keep revisions.
package lifecycle
