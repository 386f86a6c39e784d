package configsrv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
)

// BlobMaterializer writes a machine's disks at a point as new fixed-VHD
// page blobs in a container of the blob store's account (store/azblob):
// what target storage in Azure Blob Storage can do besides Materializer.
type BlobMaterializer interface {
	MaterializeToBlob(ctx context.Context, machine, pointID, container string) ([]azblob.BlobImage, error)
}

// checkToBlob checks a failover request with ToBlob.
func (s *Failovers) checkToBlob(req api.FailoverRequest) error {
	if _, ok := s.store.(BlobMaterializer); !ok {
		return httpapi.Errorf(http.StatusBadRequest, "failover to blob: target storage is not in Azure Blob Storage",
			"--to-blob needs a server run with --store azblob://ACCOUNT/CONTAINER; use --out DIR here")
	}
	if req.Out != "" {
		return httpapi.Errorf(http.StatusBadRequest, "failover to blob: out and to_blob given", "give --out DIR or --to-blob CONTAINER, not both")
	}
	if req.Check {
		return httpapi.Errorf(http.StatusBadRequest, "failover to blob: check asked",
			"a filesystem check reads local images: fail over with --test --out DIR --check to check a point, then --to-blob without --check")
	}
	return nil
}

// toBlob is Run for req.ToBlob: each disk becomes a page blob.
func (s *Failovers) toBlob(ctx context.Context, m string, pt api.Point, req api.FailoverRequest, start time.Time, log *slog.Logger) (api.FailoverResult, error) {
	log.Info("materializing to blobs", "test", req.Test, "container", req.ToBlob)
	imgs, err := s.store.(BlobMaterializer).MaterializeToBlob(ctx, m, pt.ID, req.ToBlob)
	if err != nil {
		var te *azblob.ToBlobError
		if errors.As(err, &te) {
			status := http.StatusBadRequest
			if te.Exists {
				status = http.StatusConflict
			}
			return api.FailoverResult{}, &httpapi.Error{Status: status, Msg: "failover to blob: " + te.Msg, Remedy: te.Hint()}
		}
		return api.FailoverResult{}, materializeError(err)
	}
	res := api.FailoverResult{Machine: m, Point: pt, Test: req.Test, Images: make([]api.Image, len(imgs)), Checks: []api.FSCheck{}, CheckOK: true}
	var copied, written int64
	for i, im := range imgs {
		res.Images[i] = api.Image{Disk: im.Disk, URL: im.URL, Size: im.Size}
		copied, written = copied+im.Copied, written+im.Written
	}
	log.Info("failover page blobs written", "test", req.Test, "images", len(imgs), "copied_bytes", copied, "written_bytes", written)
	return s.record(m, pt, req, res, start, log)
}

// failoverOut is where a failover put its images: req.Out, or for a
// failover to blob the "directory" of its page blobs' URLs.
func failoverOut(req api.FailoverRequest, res api.FailoverResult) string {
	if req.ToBlob == "" || len(res.Images) == 0 {
		return req.Out
	}
	u := res.Images[0].URL
	if i := strings.LastIndexByte(u, '/'); i > 0 {
		return u[:i]
	}
	return u
}
