module github.com/parkpage/parkpage/cmd/parkpage/browsertest

go 1.26.8

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/parkpage/parkpage v0.0.0
)

require (
	github.com/VictoriaMetrics/metrics v1.44.0 // indirect
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/emiago/sipgo v1.7.2 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/parkpage/parkpage => ../../..
