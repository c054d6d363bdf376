package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// maxListChunkBytes bounds the items of one request of `shrike lists put`
// and `add`, well within the server's default request limit (4 MiB).
const maxListChunkBytes = 2 << 20

func newListsCmd(e env) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "lists",
		Short: "Edit the managed lists of a running shrike serve (API client)",
		Long: `Lists talks to the gRPC API of shrike serve (--server, default ` + defaultServer + `)
to read and edit managed lists: reference data a ruleset declares as
lists: {NAME: {managed: true, type: string|cidr}} and reads as lists.NAME.
Every instance sees a change within a second, without a ruleset reload.

Files hold one item per line; blank lines, lines starting with # and the
rest of a line from " #" are ignored ("-" reads stdin). The server checks
each item against the list's type; a bad one is printed as FILE:LINE.

The token (--token or ` + tokenEnv + `) needs the scope lists:write to change a list
and rules:read to read it.`,
		Example: `  shrike lists put mule_accounts mules.txt
  shrike lists add mule_accounts acct-17 acct-18
  shrike lists remove blocked_nets 203.0.113.0/24
  shrike lists get mule_accounts --prefix acct-1`,
	}
	addClientFlags(cmd, f)
	cmd.AddCommand(newListsGetCmd(e, f), newListsPutCmd(e, f), newListsChangeCmd(e, f, "add"), newListsChangeCmd(e, f, "remove"))
	return cmd
}

// listsClient is apiClient of the list service.
func listsClient(cmd *cobra.Command, e env, f *clientFlags, outputs ...string) (shrikev1.ListServiceClient, func(), error) {
	return apiClient(cmd, e, f, shrikev1.NewListServiceClient, outputs...)
}

func newListsGetCmd(e env, f *clientFlags) *cobra.Command {
	var prefix, contains string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a managed list's items, one per line",
		Long: `Get prints the items of a managed list in byte order, one per line on stdout
(a file put takes back), and a line about the list on stderr: its types, the
rulesets that declare it, its version and item count. With -o json, each
page of the API's answer is one JSON line.`,
		Example: "  shrike lists get mule_accounts > mules.txt\n  shrike lists get blocked_nets --contains 203.0.113",
		Args:    argsExactly(1, "list name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := listsClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			req := &shrikev1.GetListRequest{Name: args[0], PageSize: registry.MaxPageSize, Prefix: prefix, Contains: contains}
			for first := true; ; first = false {
				ctx, cancel := f.call(cmd.Context())
				l, err := c.GetList(ctx, req)
				cancel()
				if err != nil {
					return f.rpcError("get list "+args[0], err)
				}
				if f.output == "json" {
					if err := writeJSONLine(e.stdout, l); err != nil {
						return err
					}
				} else {
					if first {
						fmt.Fprintf(e.stderr, "list %s (%s, declared by %s): version %d, %d items\n", l.GetName(),
							strings.Join(l.GetTypes(), ", "), strings.Join(l.GetRulesets(), ", "), l.GetVersion(), l.GetItemCount())
					}
					for _, it := range l.GetItems() {
						if _, err := fmt.Fprintln(e.stdout, it); err != nil {
							return err
						}
					}
				}
				if l.GetNextPageToken() == "" {
					break
				}
				req.PageToken = l.GetNextPageToken()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only the items that start with `TEXT`")
	cmd.Flags().StringVar(&contains, "contains", "", "only the items that hold `TEXT`")
	return cmd
}

// listInput is items to send and where each came from, for errors.
type listInput struct {
	items []string
	where []string // "FILE:LINE" or "argument N"
}

func readListInput(e env, file string, args []string) (listInput, error) {
	var in listInput
	if file == "" {
		for i, a := range args {
			in.items = append(in.items, a)
			in.where = append(in.where, "argument "+strconv.Itoa(i+1))
		}
		return in, nil
	}
	var src []byte
	var err error
	name := file
	if file == "-" {
		name = "stdin"
		src, err = io.ReadAll(e.stdin)
	} else {
		src, err = os.ReadFile(file)
	}
	if err != nil {
		return in, err
	}
	for i, line := range strings.Split(string(src), "\n") {
		for _, it := range rules.ParseListText([]byte(line)) {
			in.items = append(in.items, it)
			in.where = append(in.where, name+":"+strconv.Itoa(i+1))
		}
	}
	return in, nil
}

// chunks splits items into requests within the server's limits.
func chunks(items []string) [][2]int {
	var out [][2]int
	start, size := 0, 0
	for i, it := range items {
		if i > start && (i-start >= registry.MaxListItemsPerRequest || size+len(it)+8 > maxListChunkBytes) {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += len(it) + 8
	}
	return append(out, [2]int{start, len(items)})
}

var itemField = regexp.MustCompile(`^items\[(\d+)\]$`)

// listRPCError is rpcError, with the field violations of bad items
// printed where the items came from.
func listRPCError(f *clientFlags, what string, err error, in listInput, offset int) error {
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		return f.rpcError(what, err)
	}
	var lines []string
	for _, v := range fieldViolations(st) {
		m := itemField.FindStringSubmatch(v.GetField())
		if m == nil {
			return f.rpcError(what, err)
		}
		i, _ := strconv.Atoi(m[1])
		if i += offset; i < len(in.where) {
			lines = append(lines, in.where[i]+": "+v.GetDescription())
		}
	}
	if len(lines) == 0 {
		return f.rpcError(what, err)
	}
	msg := st.Message()
	if i := strings.Index(msg, ": item "); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("%s: bad items of %s\n  %s", what, msg, strings.Join(lines, "\n  "))
}

func printChange(e env, f *clientFlags, verb string, ch *shrikev1.ListChange) error {
	if f.output == "json" {
		return writeJSONLine(e.stdout, ch)
	}
	_, err := fmt.Fprintf(e.stdout, "list %s: version %d, %d items (%d %s)\n", ch.GetName(), ch.GetVersion(), ch.GetItemCount(), ch.GetChangedItems(), verb)
	return err
}

func newListsPutCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "put NAME FILE",
		Short: "Replace a managed list's items with a file's",
		Long: `Put replaces the items of a managed list with those of FILE ("-": stdin). A
file of more than 50,000 items (or 2 MiB) goes as a put of its first part
and adds of the rest: instances may see the list partly filled meanwhile.`,
		Example: "  shrike lists put mule_accounts mules.txt\n  grep -v '^#' nets.txt | shrike lists put blocked_nets -",
		Args:    argsExactly(2, "list name and file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readListInput(e, args[1], nil)
			if err != nil {
				return err
			}
			c, done, err := listsClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			var last *shrikev1.ListChange
			for i, ch := range chunks(in.items) {
				part := in.items[ch[0]:ch[1]]
				ctx, cancel := f.call(cmd.Context())
				if i == 0 {
					last, err = c.PutList(ctx, &shrikev1.PutListRequest{Name: args[0], Items: part})
				} else {
					last, err = c.AddListItems(ctx, &shrikev1.ChangeListItemsRequest{Name: args[0], Items: part})
				}
				cancel()
				if err != nil {
					return listRPCError(f, "put list "+args[0], err, in, ch[0])
				}
			}
			last.ChangedItems = last.GetItemCount()
			return printChange(e, f, "put", last)
		},
	}
}

func newListsChangeCmd(e env, f *clientFlags, verb string) *cobra.Command {
	var file string
	past := map[string]string{"add": "added", "remove": "removed"}[verb]
	cmd := &cobra.Command{
		Use:     verb + " NAME [ITEM...] [--file FILE]",
		Short:   map[string]string{"add": "Add items to a managed list", "remove": "Remove items from a managed list"}[verb],
		Example: fmt.Sprintf("  shrike lists %s mule_accounts acct-17 acct-18\n  shrike lists %s blocked_nets --file nets.txt", verb, verb),
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError{fmt.Errorf("missing list name")}
			case len(args) == 1 && file == "":
				return usageError{fmt.Errorf("give the items to %s as arguments or with --file", verb)}
			case len(args) > 1 && file != "":
				return usageError{fmt.Errorf("give the items as arguments or with --file, not both")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readListInput(e, file, args[1:])
			if err != nil {
				return err
			}
			c, done, err := listsClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			total := &shrikev1.ListChange{Name: args[0]}
			for _, ch := range chunks(in.items) {
				req := &shrikev1.ChangeListItemsRequest{Name: args[0], Items: in.items[ch[0]:ch[1]]}
				ctx, cancel := f.call(cmd.Context())
				var got *shrikev1.ListChange
				if verb == "add" {
					got, err = c.AddListItems(ctx, req)
				} else {
					got, err = c.RemoveListItems(ctx, req)
				}
				cancel()
				if err != nil {
					return listRPCError(f, verb+" list items "+args[0], err, in, ch[0])
				}
				total.Version, total.ItemCount = got.GetVersion(), got.GetItemCount()
				total.ChangedItems += got.GetChangedItems()
			}
			return printChange(e, f, past, total)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the items from `FILE` (\"-\": stdin), one per line")
	return cmd
}
