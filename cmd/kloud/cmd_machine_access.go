package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kloud/kloud/client"
)

// exitStatus is the exit status of a command run with kloud machine ssh:
// kloud exits with it, printing nothing more.
type exitStatus int

func (e exitStatus) Error() string { return "remote command exited " + strconv.Itoa(int(e)) }

// machineAccessCommands are the machine verbs of terminals and sharing.
func machineAccessCommands(a *app) []*cobra.Command {
	ssh := &cobra.Command{
		Use:   "ssh ID [-- COMMAND...]",
		Short: "Open a terminal on a running machine, or run a command there",
		Long: `Open an interactive terminal on a Running machine through Kloud (the machine's
agent keeps a tunnel to Kloud, so the machine's address is never needed).
When standard input is a terminal it is put in raw mode: Ctrl-C goes to the
remote shell, and the window size is sent at start and whenever it changes.

With a command after --, it runs that command instead of the login shell,
prints its output and exits with its exit status. --session names a session
that survives a dropped connection for five minutes; connecting again with
the same name re-attaches it and replays its recent output.`,
		Example: `  kloud machine ssh m-1
  kloud machine ssh m-1 --session work
  kloud machine ssh m-1 -- sh -c 'echo hi; exit 3'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); len(args) == 0 || n == 0 {
				return usagef("missing argument ID")
			} else if n > 1 || (n < 0 && len(args) > 1) {
				return usagef("unexpected argument %q; put a command after --", clip(args[1]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.ssh(cmd.Context(), args[0], args[1:], str(cmd, "session"), cmd.InOrStdin())
		},
	}
	ssh.Flags().String("session", "", "name of a session that survives a dropped connection")
	share := &cobra.Command{
		Use:   "share ID --user USER --permission use|control",
		Short: "Share a machine with another user",
		Long: `Share a machine you own (admins: any) with another user: "use" lets them open
terminals on it, "control" also start and stop it. The machine then appears in
their machine list with shared, owner_id and permission. Sharing again
changes the permission.`,
		Example: `  kloud machine share m-1 --user usr-2 --permission use`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sh, err := a.c.ShareMachine(cmd.Context(), args[0], client.ShareRequest{UserID: str(cmd, "user"), Permission: str(cmd, "permission")})
			if err != nil {
				return err
			}
			return a.printShares([]client.Share{*sh})
		},
	}
	share.Flags().String("user", "", "id of the user to share with")
	share.Flags().String("permission", "use", "use (terminals) or control (terminals, start and stop)")
	shares := &cobra.Command{
		Use:     "shares ID",
		Short:   "List who a machine is shared with",
		Long:    `List the users a machine you own (admins: any) is shared with, and their permission.`,
		Example: `  kloud machine shares m-1 -o json`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := a.c.MachineShares(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printShares(ss)
		},
	}
	unshare := &cobra.Command{
		Use:   "unshare ID --user USER",
		Short: "Revoke a user's share of a machine",
		Long: `Revoke a user's share of a machine you own (admins: any). Their open terminal
sessions on the machine are closed within a second.`,
		Example: `  kloud machine unshare m-1 --user usr-2`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := str(cmd, "user")
			if user == "" {
				return usagef("--user is required")
			}
			if err := a.c.UnshareMachine(cmd.Context(), args[0], user); err != nil {
				return err
			}
			return a.print(map[string]string{"machine_id": args[0], "user_id": user, "status": "revoked"}, nil, func() [][]string {
				return [][]string{{"revoked the share of " + args[0] + " with " + user}}
			})
		},
	}
	unshare.Flags().String("user", "", "id of the user whose share to revoke")
	sessions := &cobra.Command{
		Use:   "sessions ID",
		Short: "List a machine's terminal sessions",
		Long: `List the terminal sessions opened on a machine: who opened each, through which
replica, when, and how it ended. The owner and admins see every session; a
user the machine is shared with sees their own. --open lists only the open
ones.`,
		Example: `  kloud machine sessions m-1 --open`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			open, _ := cmd.Flags().GetBool("open")
			ss, err := a.c.MachineSessions(cmd.Context(), args[0], open)
			if err != nil {
				return err
			}
			return a.print(ss, []string{"ID", "USER", "NAME", "OPENED", "CLOSED", "EXIT"}, func() [][]string {
				var rows [][]string
				for _, s := range ss {
					closed, exit := "open", "-"
					if s.ClosedAt != nil {
						closed = ago(*s.ClosedAt)
					}
					if s.ExitCode != nil {
						exit = strconv.Itoa(*s.ExitCode)
					}
					rows = append(rows, []string{s.ID, s.UserID, orDash(s.Name), ago(s.OpenedAt), closed, exit})
				}
				return rows
			})
		},
	}
	sessions.Flags().Bool("open", false, "only the open sessions")
	return []*cobra.Command{ssh, share, shares, unshare, sessions}
}

func (a *app) printShares(ss []client.Share) error {
	return a.print(ss, []string{"MACHINE", "USER", "PERMISSION", "OWNER", "CREATED"}, func() [][]string {
		var rows [][]string
		for _, s := range ss {
			rows = append(rows, []string{s.MachineID, s.UserID, s.Permission, s.OwnerID, ago(s.CreatedAt)})
		}
		return rows
	})
}

// ssh runs one terminal session on the process's terminal (raw mode when
// stdin is one) and returns the remote command's exit status as an
// exitStatus error when it is not 0.
func (a *app) ssh(ctx context.Context, id string, command []string, session string, stdin io.Reader) error {
	opts := client.TerminalOptions{Command: command, Session: session}
	fd := -1
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd = int(f.Fd())
		if cols, rows, err := term.GetSize(fd); err == nil {
			opts.Cols, opts.Rows = cols, rows
		}
	}
	t, err := a.c.Terminal(ctx, id, opts)
	if err != nil {
		return err
	}
	defer t.Close()
	if fd >= 0 {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if cols, rows, err := term.GetSize(fd); err == nil {
					_ = t.Resize(cols, rows)
				}
			}
		}()
	}
	go func() {
		_, err := io.Copy(t, stdin)
		if err == nil && fd < 0 && len(command) == 0 {
			// Standard input ended (a script piped in): end the shell's
			// input as a terminal's Ctrl-D does.
			_, _ = t.Write([]byte{4})
		}
	}()
	_, err = io.Copy(a.out, t)
	if code, ok := t.ExitCode(); ok {
		if code != 0 {
			return exitStatus(code)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("terminal on %s: %w", id, err)
	}
	if code, reason := t.CloseReason(); code != 1000 && code != 0 {
		return fmt.Errorf("terminal on %s closed: %s (%d)", id, reason, code)
	}
	return nil
}
