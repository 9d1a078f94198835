// Package windowing will own event time and windows: watermark strategies,
// tumbling, sliding, session and global windows with triggers, and
// allowed lateness with a late-data side output.
package windowing
