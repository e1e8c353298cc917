package actors_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkIncrease measures a user's increase through a node onto a real
// journal, past its rate limit (as a call admitted on another node is),
// from 64 goroutines each a user of its own, on an open group
// and on a group of 100,000 members of which the users are members: the
// difference is what the membership check costs a call.
func BenchmarkIncrease(b *testing.B) {
	for _, size := range []int{0, 100_000} {
		name := "open"
		if size > 0 {
			name = fmt.Sprintf("members-%d", size)
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, nil)
			for i := 0; i < size; i += 100 {
				users := make([]string, 100)
				for j := range users {
					users[j] = fmt.Sprintf("user-%06d", i+j)
				}
				change(b, e.node, "", "g", addMembers(users...))
			}
			var next atomic.Int64
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				user := fmt.Sprintf("user-%06d", next.Add(1)*997%100_000)
				for pb.Next() {
					// As a call admitted by the user's rate limit: the
					// limiter would refuse the 21st.
					cmd := increase("k", 1)
					cmd.User = user
					if _, err := e.node.Change(context.Background(), "", "g", cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
