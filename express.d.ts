import type { RequestHandler } from 'express'
import type { StorageManager } from './index'

/** Serves local signed URLs (GET/HEAD with Range and ETag, signed PUT uploads). */
export declare function signedUrls(storage: StorageManager): RequestHandler
