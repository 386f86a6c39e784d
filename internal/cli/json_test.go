package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteJSONNeverNullForAList(t *testing.T) {
	type inner struct {
		Items []string `json:"items"`
	}
	type outer struct {
		Problems []string `json:"problems"`
		Disks    []inner  `json:"disks"`
		Ptr      *inner   `json:"ptr"`
		Opt      []int    `json:"opt,omitempty"`
		Raw      []byte   `json:"raw"`
		Nested   [1]inner `json:"nested"`
		List     []*inner `json:"list"`
	}
	var b bytes.Buffer
	v := outer{Disks: []inner{{}}, Ptr: &inner{}, List: []*inner{{}}}
	if err := WriteJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(strings.ReplaceAll(out, `"raw": null`, ""), "null") {
		t.Fatalf("a list came out as null:\n%s", out)
	}
	for _, want := range []string{`"problems": []`, `"items": []`} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, `"opt"`) {
		t.Fatalf("omitempty list printed:\n%s", out)
	}
	if v.Problems != nil {
		t.Fatal("WriteJSON changed the caller's value")
	}
}
