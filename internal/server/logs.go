package server

import (
	"errors"
	"fmt"
	"github.com/portcullis-dev/portcullis/internal/api"
	"io"
	"net/http"
	"strconv"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// maxLogBody caps an upload at the transport; the RA applies the
// configured (smaller or equal) limit with a clear error.
const maxLogBody = 8 << 20

func viewLog(l *store.DeviceLog) api.Log {
	return api.Log{ID: l.ID, Device: string(l.Device), Name: l.Name, ReceivedAt: l.ReceivedAt.UTC(), Size: l.Size}
}

// handleUploadLog takes a device's log (raw body, ?name=) over mTLS.
// Uploads are limited per device certificate, so one device cannot fill
// the store however many addresses it has.
func (s *Server) handleUploadLog(w http.ResponseWriter, r *http.Request) {
	leaf, err := s.verifyClient(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ok, wait := s.logLimiter.allow(pki.SerialString(leaf.SerialNumber)); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		s.writeError(w, r, errStatus(http.StatusTooManyRequests, "too many log uploads from this device; retry later"))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLogBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, errStatus(http.StatusRequestEntityTooLarge, "log over %d bytes", maxLogBody))
			return
		}
		s.writeError(w, r, errStatus(http.StatusBadRequest, "reading the log: %v", err))
		return
	}
	l, err := s.deps.RA.UploadLog(r.Context(), leaf, r.URL.Query().Get("name"), data)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, viewLog(l))
}

func (s *Server) handleListLogs(w http.ResponseWriter, r *http.Request, _ admin) error {
	logs, err := s.deps.RA.DeviceLogs(r.Context(), store.DeviceID(r.PathValue("id")))
	if err != nil {
		return err
	}
	out := api.LogList{Logs: []api.Log{}}
	for _, l := range logs {
		out.Logs = append(out.Logs, viewLog(l))
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

// handleGetLog downloads a log as it was uploaded. It is device-supplied
// bytes: served as an attachment that browsers neither render nor sniff.
func (s *Server) handleGetLog(w http.ResponseWriter, r *http.Request, _ admin) error {
	id, err := strconv.ParseInt(r.PathValue("log"), 10, 64)
	if err != nil {
		return errStatus(http.StatusBadRequest, "log %q: want a number", r.PathValue("log"))
	}
	l, err := s.deps.RA.DeviceLog(r.Context(), store.DeviceID(r.PathValue("id")), id)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", strconv.FormatInt(l.ID, 10)+"-"+l.Name))
	_, _ = w.Write(l.Data)
	return nil
}
