package server_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"verifyd/web"
)

// TestEverySentenceIsInTheCatalogue: every sentence a person reads, wherever
// the code writes it (an error's Message, a sentence passed to a
// translation, the script's sentences, a *Message constant), is a key of
// the English catalogue, so that every language has it (see
// TestCataloguesComplete) and none is shown in English by mistake.
func TestEverySentenceIsInTheCatalogue(t *testing.T) {
	data, err := fs.ReadFile(web.FS, "i18n/en.json")
	if err != nil {
		t.Fatal(err)
	}
	var en map[string]string
	if err := json.Unmarshal(data, &en); err != nil {
		t.Fatal(err)
	}
	found := 0
	check := func(pos token.Position, lit *ast.BasicLit) {
		if lit == nil || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || s == "" {
			return
		}
		found++
		if _, ok := en[s]; !ok {
			t.Errorf("%s: %q is not in web/i18n/en.json", pos, s)
		}
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Test stand-ins speak for Twilio, not to a person; the messaging
		// backend's SMS texts have tables of their own, per language.
		if d.IsDir() && (strings.HasSuffix(d.Name(), "test") || d.Name() == "messaging") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Message" {
					lit, _ := n.Value.(*ast.BasicLit)
					check(fset.Position(n.Pos()), lit)
				}
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				if (name == "t" || name == "T") && len(n.Args) > 0 {
					lit, _ := n.Args[0].(*ast.BasicLit)
					check(fset.Position(n.Pos()), lit)
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i >= len(n.Values) {
						break
					}
					switch {
					case strings.HasSuffix(id.Name, "Message") || strings.HasPrefix(id.Name, "msg"):
						lit, _ := n.Values[i].(*ast.BasicLit)
						check(fset.Position(n.Pos()), lit)
					case id.Name == "jsTexts":
						if cl, ok := n.Values[i].(*ast.CompositeLit); ok {
							for _, e := range cl.Elts {
								lit, _ := e.(*ast.BasicLit)
								check(fset.Position(e.Pos()), lit)
							}
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 50 {
		t.Errorf("found %d sentences in the code, want the many it has: the search is broken", found)
	}
}
