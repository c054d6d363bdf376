package server

import (
	"context"
	"errors"
	"unicode/utf8"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// listService implements shrikev1.ListServiceServer over the registry's
// managed lists.
type listService struct {
	shrikev1.UnimplementedListServiceServer
	s *Server
}

// listErr maps a registry error of a list call, naming the list.
func listErr(err error, name string) error {
	var items *rules.ListItemsError
	if errors.As(err, &items) || errors.Is(err, registry.ErrListNotFound) || errors.Is(err, registry.ErrInvalidListName) ||
		errors.Is(err, registry.ErrTooManyItems) || errors.Is(err, registry.ErrListTooLarge) {
		return withMeta(err, "list", name)
	}
	return withMeta(registryErr(err), "list", name)
}

func (h *listService) change(ctx context.Context, what, name string, items []string,
	do func(context.Context, string, []string) (registry.ListChange, error),
) (*shrikev1.ListChange, error) {
	ch, err := do(ctx, name, items)
	if err != nil {
		return nil, listErr(err, name)
	}
	if ch.Changed > 0 || what == "put" {
		h.s.log.Info("list changed", "list", name, "change", what, "version", ch.Version, "items", ch.ItemCount, "changed", ch.Changed, "token", tokenName(ctx))
	}
	return &shrikev1.ListChange{Name: ch.Name, Version: ch.Version, ItemCount: ch.ItemCount, ChangedItems: ch.Changed}, nil
}

func (h *listService) PutList(ctx context.Context, req *shrikev1.PutListRequest) (*shrikev1.ListChange, error) {
	return h.change(ctx, "put", req.GetName(), req.GetItems(), h.s.registry.PutList)
}

func (h *listService) AddListItems(ctx context.Context, req *shrikev1.ChangeListItemsRequest) (*shrikev1.ListChange, error) {
	return h.change(ctx, "add", req.GetName(), req.GetItems(), h.s.registry.AddListItems)
}

func (h *listService) RemoveListItems(ctx context.Context, req *shrikev1.ChangeListItemsRequest) (*shrikev1.ListChange, error) {
	return h.change(ctx, "remove", req.GetName(), req.GetItems(), h.s.registry.RemoveListItems)
}

func (h *listService) GetList(ctx context.Context, req *shrikev1.GetListRequest) (*shrikev1.List, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	for field, v := range map[string]string{"prefix": req.GetPrefix(), "contains": req.GetContains()} {
		switch {
		case len(v) > rules.MaxListItemBytes:
			return nil, badField(field, "%d bytes, over the limit of %d (the longest item)", len(v), rules.MaxListItemBytes)
		case !utf8.ValidString(v):
			return nil, badField(field, "not valid UTF-8")
		}
	}
	page, err := h.s.registry.GetList(ctx, req.GetName(), registry.ListQuery{
		PageSize: n, PageToken: req.GetPageToken(), Prefix: req.GetPrefix(), Contains: req.GetContains(),
	})
	if err != nil {
		return nil, listErr(err, req.GetName())
	}
	out := &shrikev1.List{
		Name:          page.Name,
		Rulesets:      page.Rulesets,
		Version:       page.Version,
		ItemCount:     page.ItemCount,
		Items:         page.Items,
		NextPageToken: page.NextPageToken,
	}
	for _, t := range page.Types {
		out.Types = append(out.Types, string(t))
	}
	return out, nil
}

func (h *listService) ListLists(ctx context.Context, req *shrikev1.ListListsRequest) (*shrikev1.ListListsResponse, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	lists, next, err := h.s.registry.ListLists(ctx, n, req.GetPageToken())
	if err != nil {
		return nil, registryErr(err)
	}
	out := &shrikev1.ListListsResponse{NextPageToken: next}
	for _, l := range lists {
		ml := &shrikev1.ManagedList{
			Name:      l.Name,
			Rulesets:  l.Rulesets,
			Version:   l.Version,
			ItemCount: l.ItemCount,
		}
		for _, t := range l.Types {
			ml.Types = append(ml.Types, string(t))
		}
		out.Lists = append(out.Lists, ml)
	}
	return out, nil
}
