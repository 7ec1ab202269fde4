"""One module per file format; the data model lives in posecluster.data.labels."""
