package mapping_test

import (
	"fmt"

	"github.com/bucky3/bucky3/parse"
	"github.com/bucky3/bucky3/parse/mapping"
)

func ExampleMapper_Map() {
	m, err := mapping.Parse([]byte(`
defaults:
  observer_type: histogram
mappings:
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
- match: 'db\.(\w+)\.query_ms'
  match_type: regex
  name: "db_query_seconds"
  observer_type: summary
  labels:
    db: "$1"
`))
	if err != nil {
		panic(err)
	}
	for _, c := range []struct {
		name string
		typ  parse.Type
	}{{"shop.signup.facebook.failure", parse.Counter}, {"db.users.query_ms", parse.Timer}, {"other.metric", parse.Timer}} {
		r, ok := m.Map(c.name, c.typ)
		if !ok {
			fmt.Println(c.name, "unmatched:", m.Defaults().ObserverType)
			continue
		}
		fmt.Println(c.name, "→", r.Name, r.Labels, r.Rule.ObserverType)
	}
	// Output:
	// shop.signup.facebook.failure → signup_events_total [{job shop_server} {outcome failure} {provider facebook}] histogram
	// db.users.query_ms → db_query_seconds [{db users}] summary
	// other.metric unmatched: histogram
}
