package bus

import "testing"

func TestReplyAllowed(t *testing.T) {
	const host = "h-aaaa"
	cases := []struct {
		reply string
		want  bool
	}{
		{"_INBOX.h-aaaa.abc", true},
		{"_INBOX.h-aaaa.Nuid123.7", true},
		{"", false},
		{"_INBOX.h-aaaa", false},
		{"_INBOX.h-aaaa.", false},
		{"_INBOX.h-aaaa..x", false},
		{"_INBOX.h-aaaa.*", false},
		{"_INBOX.h-aaaa.>", false},
		{"_INBOX.h-aaaa.a b", false},
		{"_INBOX.h-aaaab.x", false}, // another host whose id starts alike
		{"_INBOX.h-bbbb.x", false},
		{"_INBOX.x", false},
		{"gantry.agent.h-bbbb.hello", false},
		{"gantry.agent.h-bbbb.hb", false},
		{"gantry.agent.h-aaaa.hello", false}, // its own subjects: a loop
		{"gantry.cmd.h-bbbb", false},
		{"gantry.cmd.h-aaaa", false},
		{"$SYS.REQ.USER.AUTH", false},
	}
	for _, c := range cases {
		if got := ReplyAllowed(host, c.reply); got != c.want {
			t.Errorf("ReplyAllowed(%q, %q) = %v, want %v", host, c.reply, got, c.want)
		}
	}
	for _, bad := range []string{"", "*", ">", "a.b"} {
		if ReplyAllowed(bad, InboxPrefix(bad)+".x") {
			t.Errorf("host id %q accepted", bad)
		}
	}
}
