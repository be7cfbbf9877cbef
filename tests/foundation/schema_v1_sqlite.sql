-- charter-tui schema version 1 (SQLite), as the first release created it: no metric_aggregate table,
-- no metric_sample.counter_reset. Used to test the migration path to the current schema.
CREATE TABLE audit_event (
	id INTEGER NOT NULL, 
	ts FLOAT NOT NULL, 
	actor VARCHAR NOT NULL, 
	entity VARCHAR NOT NULL, 
	entity_id VARCHAR NOT NULL, 
	action VARCHAR NOT NULL, 
	from_state VARCHAR, 
	to_state VARCHAR, 
	comment VARCHAR, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_event_ts ON audit_event (ts);
CREATE TABLE bottleneck (
	id INTEGER NOT NULL, 
	instance VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	severity VARCHAR(8) NOT NULL, 
	active BOOLEAN NOT NULL, 
	started_at FLOAT NOT NULL, 
	cleared_at FLOAT, 
	summary VARCHAR NOT NULL, 
	evidence JSON, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_bottleneck_instance ON bottleneck (instance);
CREATE TABLE compile_record (
	id INTEGER NOT NULL, 
	path VARCHAR NOT NULL, 
	content_hash VARCHAR NOT NULL, 
	compiled_at FLOAT NOT NULL, 
	ok BOOLEAN NOT NULL, 
	error VARCHAR, 
	result JSON, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_compile_record_path ON compile_record (path);
CREATE TABLE instance (
	name VARCHAR NOT NULL, 
	url VARCHAR NOT NULL, 
	engine VARCHAR NOT NULL, 
	model VARCHAR, 
	state VARCHAR(7) NOT NULL, 
	state_reason VARCHAR, 
	last_seen FLOAT, 
	info JSON, 
	PRIMARY KEY (name)
);
CREATE TABLE metric_sample (
	id INTEGER NOT NULL, 
	instance VARCHAR NOT NULL, 
	ts FLOAT NOT NULL, 
	engine VARCHAR NOT NULL, 
	window_s FLOAT, 
	ttft_p50_s FLOAT, 
	ttft_p95_s FLOAT, 
	itl_p50_s FLOAT, 
	itl_p95_s FLOAT, 
	e2e_p50_s FLOAT, 
	e2e_p95_s FLOAT, 
	queue_p50_s FLOAT, 
	queue_p95_s FLOAT, 
	running FLOAT, 
	waiting FLOAT, 
	kv_cache_usage FLOAT, 
	prefix_hit_rate FLOAT, 
	prefix_queries FLOAT, 
	prefix_hits FLOAT, 
	prompt_tokens_per_s FLOAT, 
	generation_tokens_per_s FLOAT, 
	preemptions FLOAT, 
	gpu_memory_used_bytes FLOAT, 
	gpu_memory_total_bytes FLOAT, 
	requests_success_per_s FLOAT, 
	requests_failure_per_s FLOAT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_metric_sample_instance_ts ON metric_sample (instance, ts);
CREATE TABLE recommendation (
	id INTEGER NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	instance VARCHAR, 
	kind VARCHAR NOT NULL, 
	title VARCHAR NOT NULL, 
	priority INTEGER NOT NULL, 
	status VARCHAR(9) NOT NULL, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	detail JSON, 
	PRIMARY KEY (id), 
	UNIQUE (fingerprint)
);
CREATE INDEX ix_recommendation_instance ON recommendation (instance);
CREATE TABLE rollout (
	id INTEGER NOT NULL, 
	recommendation_id INTEGER, 
	state VARCHAR NOT NULL, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	title VARCHAR NOT NULL, 
	targets JSON, 
	changes JSON, 
	previous_config JSON, 
	comparison JSON, 
	stage_detail JSON, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_rollout_recommendation_id ON rollout (recommendation_id);
CREATE TABLE schema_info (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO schema_info (id, version, updated_at) VALUES (1, 1, 0);
