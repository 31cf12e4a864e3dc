package ratingbridge

import (
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/store"
)

// FramesOf groups rated points, as store.Rated.RatedPoints returns them,
// into data frames: one per scope and period, in the order the points come
// (GET /rating/dataframes answers these in CloudKitty's v2 JSON form).
func FramesOf(points []store.RatedPoint) []*dataframe.DataFrame {
	type key struct {
		scope      string
		begin, end time.Time
	}
	index := map[key]*dataframe.DataFrame{}
	var out []*dataframe.DataFrame
	for _, p := range points {
		k := key{p.Scope, p.Begin.UTC(), p.End.UTC()}
		f, ok := index[k]
		if !ok {
			f = dataframe.New(k.begin, k.end)
			index[k] = f
			out = append(out, f)
		}
		f.Add(p.Service, dataframe.DataPoint{Unit: p.Unit, Qty: p.Qty, Price: p.Price, Groupby: p.Groupby, Metadata: p.Metadata})
	}
	return out
}
