package ferrexp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func TestRace(t *testing.T) {
	dir := t.TempDir()
	f, err := ferretdb.New(&ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"}, Handler: "sqlite", SQLiteURL: "file:" + dir + "/?_txlock=immediate",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	uri := f.MongoDBURI()
	t.Log(uri)
	cl, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
		c := cl.Database("x").Collection("u")
	c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{"k", 1}}, Options: options.Index().SetUnique(true)})
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok1, ok2, del := 0, 0, int64(0)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.InsertOne(ctx, bson.M{"_id": fmt.Sprint("a", round), "k": fmt.Sprint("x", round, w)})
				_, err2 := c.InsertOne(ctx, bson.M{"_id": fmt.Sprint("b", round, w), "k": fmt.Sprint("k", round)})
				mu.Lock()
				if err == nil { ok1++ } else if !mongo.IsDuplicateKeyError(err) { t.Log(err) }
				if err2 == nil { ok2++ } else if !mongo.IsDuplicateKeyError(err2) { t.Log(err2) }
				mu.Unlock()
			}()
		}
		wg.Wait()
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.DeleteOne(ctx, bson.M{"_id": fmt.Sprint("a", round)})
				if err != nil { t.Log(err); return }
				mu.Lock(); del += r.DeletedCount; mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("round %d: _id winners %d, unique-index winners %d, deletes %d", round, ok1, ok2, del)
	}
}
