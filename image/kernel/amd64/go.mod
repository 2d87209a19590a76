module github.com/parkpage/parkpage/image/kernel/amd64

go 1.22
