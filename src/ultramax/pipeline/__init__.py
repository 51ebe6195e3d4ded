"""The hook pipeline (seed section 5): dispatcher, stage contract, middleware, registry, stages."""
