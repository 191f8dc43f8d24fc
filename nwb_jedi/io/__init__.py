"""Reading sources (local files, DANDI) into Sessions and writing results to NWB."""
