DROP INDEX runs_live_ids_idx;
