// How Kubernetes' YAML reader types every scalar: gopkg.in/yaml.v2, which sigs.k8s.io/yaml
// (kubectl, the API machinery, Flux's kustomize-controller) wraps to turn YAML into JSON.
//
// Reads file paths, one per line, on stdin. For each document of each file it prints one
// JSON line: {"file": ..., "doc": n, "scalars": [[path, kind], ...]} where kind is the Go
// type yaml.v2 gives the scalar (string, bool, int, float64, nil, time) and path joins the
// keys and indexes from the root with "/"; a key that is not a string is reported as a
// scalar of its own, with the path of its mapping and the kind prefixed by "key:".
// A document yaml.v2 cannot read gives {"file": ..., "error": message}.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	yaml "gopkg.in/yaml.v2"
)

type scalar [2]string

func kind(v interface{}) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "string"
	case bool:
		return "bool"
	case int, int64, uint64:
		return "int"
	case float64:
		return "float"
	case time.Time:
		return "time"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func walk(path string, v interface{}, out *[]scalar) {
	switch node := v.(type) {
	case map[interface{}]interface{}:
		for k, value := range node {
			name, ok := k.(string)
			if !ok {
				*out = append(*out, scalar{path, "key:" + kind(k)})
				name = fmt.Sprint(k)
			}
			walk(path+"/"+name, value, out)
		}
	case []interface{}:
		for i, item := range node {
			walk(path+"/"+strconv.Itoa(i), item, out)
		}
	default:
		*out = append(*out, scalar{path, kind(v)})
	}
}

func main() {
	lines := bufio.NewScanner(os.Stdin)
	encoder := json.NewEncoder(os.Stdout)
	for lines.Scan() {
		file := lines.Text()
		data, err := os.ReadFile(file)
		if err != nil {
			encoder.Encode(map[string]interface{}{"file": file, "error": err.Error()})
			continue
		}
		decoder := yaml.NewDecoder(bytes.NewReader(data))
		for doc := 0; ; doc++ {
			var value interface{}
			err := decoder.Decode(&value)
			if err == io.EOF {
				break
			}
			if err != nil {
				encoder.Encode(map[string]interface{}{"file": file, "error": err.Error()})
				break
			}
			scalars := []scalar{}
			walk("", value, &scalars)
			encoder.Encode(map[string]interface{}{"file": file, "doc": doc, "scalars": scalars})
		}
	}
}
