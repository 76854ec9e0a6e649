module github.com/p1logger/p1logger

go 1.26
