'use strict'
require('./conformance').conformance('s3')
