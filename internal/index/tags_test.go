package index

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/media"
)

func TestTags(t *testing.T) {
	ix, _, _ := newIndex(t)
	ctx := context.Background()
	at := time.Unix(1_700_000_000, 0)
	a := rec("acme", "c1", "med_A", media.KindAudio, at, "vip", "lead")
	b := rec("acme", "c2", "med_B", media.KindImage, at, "vip")
	other := rec("globex", "c1", "med_C", media.KindImage, at, "secret")
	for _, m := range []media.Media{a, b, other} {
		if err := ix.Put(ctx, nil, m); err != nil {
			t.Fatal(err)
		}
	}
	// Re-warming a record counts nothing twice.
	if err := ix.Put(ctx, nil, a); err != nil {
		t.Fatal(err)
	}
	got, err := ix.Tags(ctx, "acme", 10)
	if err != nil || fmt.Sprint(got) != "[{vip 2} {lead 1}]" {
		t.Fatalf("tags %v %v", got, err)
	}
	// Untagging and deleting drop counts; an unused tag disappears.
	a2 := a
	a2.Tags = []string{"vip"}
	if err := ix.Put(ctx, &a, a2); err != nil {
		t.Fatal(err)
	}
	if err := ix.Remove(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, _ = ix.Tags(ctx, "acme", 10)
	if fmt.Sprint(got) != "[{vip 1}]" {
		t.Fatalf("after changes %v", got)
	}
	if got, _ := ix.Tags(ctx, "acme", 0); len(got) != 0 {
		t.Fatalf("limit 0 gave %v", got)
	}
}
