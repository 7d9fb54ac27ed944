module pitwall.local/nosysres

go 1.22
