// Package bundle packs, recognises and safely unpacks application revision
// bundles: a directory, a .tar.gz or a .zip with appspec.yml at its root (the
// AWS CodeDeploy layout).
//
// The server stores bundles content-addressed by the SHA-256 of their bytes
// ([Digest]); [Pack] makes the same .tar.gz, and so the same digest, from the
// same directory content. Agents verify the digest of what they download,
// recognise the format by content ([Open], [Detect]), read appspec.yml
// without unpacking ([ReadFile]) and unpack each revision into a fresh
// directory ([ExtractFresh]).
//
// Archives are treated as hostile. Extraction refuses, with an [*EntryError]
// naming the entry and the reason, entry names that are absolute, contain a
// ".." component, a NUL byte or a backslash, or are not in canonical form;
// duplicate entries; symbolic links that are absolute or resolve outside the
// destination; entries written through a symbolic link; hard links (all of
// them, see [Extract]); devices, FIFOs, sockets and other special files.
// Setuid, setgid and sticky bits, and group and other write permission, are
// dropped. Every write goes through an [os.Root] opened on the destination, so
// that even a concurrent change of the tree cannot make a write land outside
// it. [Limits] on the total size, the number of entries, the size of one file
// and the expansion ratio are enforced while streaming, so a decompression
// bomb is stopped early rather than after filling the disk; sizes declared in
// zip headers are not trusted.
//
// The files of an extraction keep the archive's (masked) modes, so a file
// the appspec installs 0600 may be 0644 in the extracted tree: privacy comes
// from the destination directory, which [Extract] and [ExtractFresh] create
// 0700. The agent keeps its revision copies under 0700 directories too (see
// internal/agent/lifecycle).
package bundle
