module pitwall.local/pause

go 1.22
