"""The prompt promotion ladder, stages 1 to 3: draft, compression, cache order (`devloop check`,
`devloop watch`)."""
