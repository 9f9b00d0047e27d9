package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
)

// idempotentCtx gives ctx the Idempotency-Key of this invocation: the
// --idempotency-key flag's, else a new random one. The client sends it with
// the create and reuses it when it retries, so a retry never makes a
// second job or deployment; a script that reruns a whole command after a
// failure passes its own key to get the same guarantee.
func idempotentCtx(ctx context.Context, key string) context.Context {
	if key == "" {
		key = api.NewIdempotencyKey()
	}
	return api.WithIdempotencyKey(ctx, key)
}

// addIdempotencyFlag registers --idempotency-key on a create command.
func addIdempotencyFlag(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "idempotency-key", "", "`KEY` that makes a rerun of this command (same key, same request, within 24h) return the first result instead of creating again (default: a random key per invocation)")
}
