-- seeds/48_transcripts.sql
-- Demo transcript: the ended demo session's conversation as Claude Code
-- writes it (a prompt, a response split over two lines, a tool result, a
-- response of a model with no price), imported through the same
-- transcript_ingest() that `toolsdb import-transcripts` calls, so the usage
-- views and unpriced_usage return rows. A second run is refused by the
-- file's offset and changes nothing. A call with no FROM: on Citus a query
-- that names one session's shard would run the function on that worker.
-- Needs: seeds/40_runtime.sql (session demo-session-ended).

select
    toolsdb.transcript_ingest(
        '{"source_host": "demo", "path": "/home/carol/.claude/projects/-workspace-toolsdb/demo-session-ended.jsonl",
      "session_id": "demo-session-ended", "start_offset": 0, "end_offset": 2000, "size": 2000, "lines": 5}',
        '[
      {"o": 0, "l": {"type": "user", "uuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a01", "parentUuid": null,
        "sessionId": "demo-session-ended", "cwd": "/workspace/toolsdb", "gitBranch": "main", "version": "2.1.197",
        "timestamp": "2026-11-30T09:00:00.000Z", "message": {"role": "user", "content": "Why does the hook test fail?"}}},
      {"o": 400, "l": {"type": "assistant", "uuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a02",
        "parentUuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a01", "sessionId": "demo-session-ended", "requestId": "req_demo_1",
        "timestamp": "2026-11-30T09:00:02.000Z", "message": {"id": "msg_demo_1", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "Let me read the test."}],
        "stop_reason": null, "usage": {"input_tokens": 12, "cache_creation_input_tokens": 2048,
        "cache_read_input_tokens": 15000, "cache_creation": {"ephemeral_5m_input_tokens": 2048,
        "ephemeral_1h_input_tokens": 0}, "output_tokens": 8}}}},
      {"o": 900, "l": {"type": "assistant", "uuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a03",
        "parentUuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a02", "sessionId": "demo-session-ended", "requestId": "req_demo_1",
        "timestamp": "2026-11-30T09:00:03.000Z", "message": {"id": "msg_demo_1", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [{"type": "tool_use", "id": "toolu_demo_1", "name": "Read",
        "input": {"file_path": "/workspace/toolsdb/tests/test_hook.py"}}], "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 2048, "cache_read_input_tokens": 15000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2048, "ephemeral_1h_input_tokens": 0}, "output_tokens": 95}}}},
      {"o": 1400, "l": {"type": "user", "uuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a04",
        "parentUuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a03", "sessionId": "demo-session-ended",
        "timestamp": "2026-11-30T09:00:03.500Z", "message": {"role": "user", "content": [{"type": "tool_result",
        "tool_use_id": "toolu_demo_1", "content": "def test_hook(): ...", "is_error": false}]}}},
      {"o": 1700, "l": {"type": "assistant", "uuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a05",
        "parentUuid": "6f1c0a52-0d7e-4c35-9a55-1f0c4e6b7a04", "sessionId": "demo-session-ended", "requestId": "req_demo_2",
        "timestamp": "2026-11-30T09:00:06.000Z", "message": {"id": "msg_demo_2", "role": "assistant",
        "model": "claude-demo-unpriced", "content": [{"type": "text", "text": "The budget is too short."}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 40, "output_tokens": 30}}}}
    ]'
    );
