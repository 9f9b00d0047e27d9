#!/bin/sh
echo setting up the database
