package upstreamoauth

import (
	"fmt"
	"io"
	"mime"
	"net/http"
)

// postForJSON sends req (a POST to an authorization server's endpoint, named what in
// errors) and returns the answer's status and body: at most limit bytes, and JSON.
func (f *Fetcher) postForJSON(req *http.Request, what string, limit int) (int, []byte, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := f.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("calling the %s: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the %s's answer: %v", what, err)
	}
	if len(body) > limit {
		return 0, nil, fmt.Errorf("the %s's answer exceeds %d bytes", what, limit)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return 0, nil, fmt.Errorf("the %s answered %d with Content-Type %q, not JSON", what, resp.StatusCode, mt)
	}
	return resp.StatusCode, body, nil
}
