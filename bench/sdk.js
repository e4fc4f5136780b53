'use strict'
// The AWS SDK client the JavaScript baselines use: path-style addressing for the
// local server and a keep-alive agent wide enough that sockets are never the limit.
const http = require('node:http')

function s3Client(server) {
  const { S3Client } = require('@aws-sdk/client-s3')
  const { NodeHttpHandler } = require('@smithy/node-http-handler')
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }),
  })
}

module.exports = { s3Client }
